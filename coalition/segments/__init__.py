"""Segments (SPEC 2, segments and targeted offers): saved filters over the attributes members
chose to give and their behaviour, defined by a merchant over its own customers or by the
operator over the whole coalition, and the members each one holds."""
