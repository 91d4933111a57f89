"""The VOT toolkit's `redetection` transformer, given the cache folder it needs.

vot-toolkit 0.9 builds an experiment's transformers before the workspace hands the experiment its storage,
so the stock transformer always finds no cache ("Local cache is required for redetection transformer") and
the `redetection` experiment cannot run from any stack. This subclass takes its cache folder from the
stack and is otherwise the toolkit's own transformer; the long-term test's stack names it."""

from attributee import String
from vot.experiment.transformer import Redetection
from vot.workspace.storage import LocalStorage


class CachedRedetection(Redetection):
    cache_directory = String()

    def __call__(self, sequence):
        if self._cache is None:
            self._cache = LocalStorage(self.cache_directory)
        return super().__call__(sequence)
