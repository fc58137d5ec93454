"""The twin service: live state, alerts and what-if around the models, with its HTTP API and UI."""
