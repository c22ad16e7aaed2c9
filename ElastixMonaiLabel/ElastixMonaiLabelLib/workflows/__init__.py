"""What the command line runs, start to finish: register files, segment scans through a server, prepare a dataset for the server, the demo, and the reports and figures they write.
"""
