"""Insights (SPEC 2, issue 16): what the programme does for each partner and for the coalition,
computed by set-based SQL over the ledger (`insights.reads`), served to a merchant
(`GET /api/v1/insights`, the portal's Insights tab) and to the operator (`GET
/api/v1/ops/insights`, `/ops/insights`). Every figure's definition is in docs/decisions.md
(decisions 334-341) and in the API schema's descriptions."""
