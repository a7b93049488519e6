"""The simulated fleet: plays the node agent for kwok nodes with a modelled memory (SIMULATION)."""
