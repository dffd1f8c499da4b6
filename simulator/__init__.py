"""The synthetic cohort generator: the five contract tables and the latent truth behind them.

``simulator.config`` types ``configs/simulation.yaml``; ``simulator.simulate`` draws from it.
"""
