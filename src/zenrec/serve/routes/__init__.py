"""HTTP routes of the server, one module per resource: recommendations, items, events, health; history and
model_info (what the web page reads) and page (the page itself, at ``/``)."""
