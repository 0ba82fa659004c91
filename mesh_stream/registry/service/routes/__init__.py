"""One FastAPI router per resource of the registry API."""
