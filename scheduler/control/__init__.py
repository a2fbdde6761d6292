"""One implementation of each operator action (operations), with three faces: the CLI, the API
and the page."""
