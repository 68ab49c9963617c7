"""The HTTP edge shared by every package: the JSON API's conventions (SPEC 3.1), access
policies, rate limits, idempotent POSTs and cursor pagination. Packages build their routes on
these; they never answer an error, authenticate or paginate by themselves."""
