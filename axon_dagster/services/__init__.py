"""The service layer: use cases over the domain, one unit of work each."""
