from django.contrib import admin

from sample.models import Asset, Author, Book, BulkAudit, Genre, Shelf, Tag

admin.site.register([Author, Genre, Tag, Shelf, Asset, BulkAudit])


@admin.register(Book)
class BookAdmin(admin.ModelAdmin):
    list_display = ["title", "author", "status", "price"]
    list_select_related = ["author"]
