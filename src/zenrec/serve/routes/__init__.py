"""HTTP routes of the server, one module per resource: recommendations, items, events, health."""
