"""What crosses HTTP: who may connect (guard), request parameters (params), the app's versions of MONAI Label routes
(routes), and the app's errors with their HTTP statuses (errors; guard answers every error with its status).
"""
