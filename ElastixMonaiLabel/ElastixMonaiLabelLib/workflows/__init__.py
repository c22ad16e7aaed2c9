"""What the command line runs, start to finish: register files, segment scans through a server, prepare a dataset for the server (a package: layouts, one case, the dataset loop, parallel runners), the demo, and the figures they draw.
"""
