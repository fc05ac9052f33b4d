"""powercrud: operational CRUD screens for Django."""

__version__ = "0.1.0"
