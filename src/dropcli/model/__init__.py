"""The network: the dropout op written from scratch, the other noise layers, and the MLP."""
