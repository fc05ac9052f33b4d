from django.core.checks import register  # placeholder, replaced below
