"""The API's routes, one module per area; `deps` hands them the store and the dispatcher."""
