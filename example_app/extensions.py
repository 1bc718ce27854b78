"""The extension objects, created unbound so that ``create_app`` can set them up per app."""

from flask_jwt_extended import JWTManager
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase

from flask_dashboard_ws import DashboardRealtime


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)
jwt = JWTManager()
realtime = DashboardRealtime()
