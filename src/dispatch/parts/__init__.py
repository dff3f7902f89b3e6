"""Parts: stock locations, the catalogue, stock levels and their ledger, shipments, and the
parts a job asks for (reserved, in transit or backordered)."""
