"""``{% load pc_partials %}`` gives ``{% partialdef %}`` on every supported Django.

Django 6.0 has template partials built in; on Django 5.2 this library hands over
django-template-partials' tags. powercrud's templates load it so they work on both.
"""

from __future__ import annotations

import django
from django import template

if django.VERSION >= (6, 0):
    register = template.Library()
else:
    from template_partials.templatetags import partials

    register = partials.register
