"""The four callbridge services (monitor, api, webhooks, recordings) and the `callbridge` CLI."""
