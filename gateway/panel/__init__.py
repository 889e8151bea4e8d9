"""The web panel: pages and static files served by the gateway; the browser talks to the public API."""
