from django.urls import path

from dashboard import views

app_name = "dashboard"
urlpatterns = [
    path("", views.overview, name="overview"),
    path("events/", views.events, name="events"),
    path("board/", views.board, name="board"),
    path("instances/", views.instances, name="instances"),
]
