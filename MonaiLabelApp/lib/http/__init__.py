"""What crosses HTTP: who may connect, request parameters, the app's versions of MONAI Label routes, and the one place an error becomes an HTTP status.
"""
