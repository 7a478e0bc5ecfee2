"""Profiles and exporter templates: finding the profiles directory
(directories), loading and validating its YAML files into a Catalog (loading,
profilefile, with the tables of every exporter type: tables), its JSON Schema
(schema) and listing, and resolving a profile for a run. Import the module you
need: loading holds every exporter type, which costs start-up time."""
