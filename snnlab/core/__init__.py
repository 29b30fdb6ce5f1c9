"""The SNN core: neurons, synapses (delays), masking and networks, in plain PyTorch."""
