"""The host's own models: Flask-SQLAlchemy, migrated by Flask-Migrate."""

from flask_sqlalchemy import SQLAlchemy

db = SQLAlchemy()


class User(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(80), unique=True, nullable=False)
    tenant_id = db.Column(db.String(255), nullable=False)
    role = db.Column(db.String(32), nullable=False)


class Note(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    text = db.Column(db.Text, nullable=False)
