"""A URLconf without ``powercrud.urls``, for check E014."""

from sample.views import BookCRUDView

urlpatterns = BookCRUDView.get_urls()
