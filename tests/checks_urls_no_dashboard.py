"""A URLconf without ``powercrud.urls``, for check E014."""

from tests.testapp.views import BookCRUDView

urlpatterns = BookCRUDView.get_urls()
