"""The node agent: sampler loop, Node publishing, preparation executor."""
