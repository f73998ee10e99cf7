"""The guide's import path; see the `simpletuner` package."""
