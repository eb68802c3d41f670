"""The model room: the paper's network, joint definitions, decoding geometry, checkpoints, and its
training (datasets, losses, metrics, the three-stage trainer and evaluation). Imports neither
`engine`, `stream` nor `tools`."""
