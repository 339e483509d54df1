"""The API's methods, a router per topic; `services/api/http.py` puts them together."""
