"""Leadership among broker replicas: one leader per epoch, elected and fenced in the database."""
