"""The networks the app trains and runs, how their weights are loaded (weights only, strictly), and which models take
uploaded weights.
"""
