"""The networks the app trains and runs, and how their weights are loaded (weights only, strictly).
"""
