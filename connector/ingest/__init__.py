"""The ingest API's client side: models and validation, JSON.stringify bytes, signing, uploads."""
