"""The directory's domain: users, roles, settings, directory sessions and their time rules.

Import rule (kept by tests/test_layers.py): nothing here imports Flask's request globals,
authlib, saml2 or anything in `idp`. Time always arrives as a `now` argument.
"""
