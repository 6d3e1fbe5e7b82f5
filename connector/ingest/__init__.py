"""The OptiKPI ingest API client side: endpoints, models and validation, JSON.stringify bytes, signing, uploads."""
