"""Flask extensions, created unbound here and bound to an app in ``create_app``.

Keeping them in one module lets models, services and views import them without importing
the application (and without circular imports). This module imports only
:mod:`blog.database`, which imports nothing of Inkwell, and :mod:`blog.replica` (the session
class), which imports nothing of Inkwell but it and :mod:`blog.config`.
"""

from typing import TYPE_CHECKING

from flask_caching import Cache
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect

from blog.database import Base
from blog.replica import RoutingSession

# expire_on_commit=False: transaction() commits the request's read transaction before a write
# begins; expiring then would reload every object the request had already loaded.
# RoutingSession: with DATABASE_REPLICA_URL set, replica views read from the replica
# (blog/replica.py); without it, Flask-SQLAlchemy's own session.
db = SQLAlchemy(model_class=Base,
                session_options={"expire_on_commit": False, "class_": RoutingSession})
migrate = Migrate(compare_type=True, render_as_batch=True)
csrf = CSRFProtect()
login_manager = LoginManager()
limiter = Limiter(key_func=get_remote_address)
#: Site settings and the pages every page links to (blog.pages); see CACHE_TYPE in config.
cache = Cache()

if TYPE_CHECKING:
    # db.Model is made at run time from Base (the model_class above), which mypy cannot
    # follow; to the type checker every model is simply a Base.
    Model = Base
else:
    Model = db.Model
