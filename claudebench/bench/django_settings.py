"""Settings for the C-django ceiling: the project's settings, a bare URLconf, CommonMiddleware only.

PERF.md's C-django measures what Django's own request cycle costs, so everything the product adds
per request is taken away and DEBUG is off whatever the environment says.
"""

from claudebench.settings import *  # noqa: F403

DEBUG = False
ROOT_URLCONF = "claudebench.bench.django_ceiling"
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
