"""HTTP routers of the API, one module per area (orders, market data, ...), included by `api.app._include_routers`."""
