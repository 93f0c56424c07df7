"""Audio in: reading and checking audio (io), front-end features and their config, pitch, augmentation.

Imports only the base modules (errors, config, runtime).
"""
