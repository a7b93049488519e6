"""Wire contracts: the BurstPolicy CRD types and the annotations/conditions on Node objects."""
