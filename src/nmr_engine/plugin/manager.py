"""Finding, loading and checking plugins.

Plugins come from the ``nmr_engine.modules`` entry-point group (installed packages,
the built-in modules included) and, on request, from a path (``--plugin PATH``).
``NMR_PLUGINS=a,b`` restricts loading to an allow-list of entry-point names;
``NMR_TRACE_HOOKS=1`` prints every hook call to stderr.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

import attrs
import pluggy

from ..errors import ConfigurationError, PluginError
from . import hookspecs
from .api import API_VERSION, ModuleSpec

ENTRY_POINT_GROUP = "nmr_engine.modules"


@attrs.frozen
class RegisteredModule:
    """A module and the plugin that provides it."""

    spec: ModuleSpec
    plugin: Any
    plugin_name: str
    distribution: str | None = None


def _has_hookimpls(module: Any) -> bool:
    marker = f"{hookspecs.PROJECT}_impl"
    return any(hasattr(getattr(module, name, None), marker) for name in dir(module))


def api_compatible(wanted: str, provided: str = API_VERSION) -> bool:
    """Same major version, and the plugin's minor no newer than the core's."""
    try:
        w_major, w_minor = (int(x) for x in wanted.split(".")[:2])
        p_major, p_minor = (int(x) for x in provided.split(".")[:2])
    except ValueError:
        return False
    return w_major == p_major and w_minor <= p_minor


class PluginRegistry:
    """A typed facade over pluggy's manager: load plugins, list modules, call hooks."""

    def __init__(self, *, entry_points: bool = True, paths: list[Path] | None = None, plugins: list | None = None):
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self._dists: dict[int, str] = {}
        self.pm.add_hookspecs(hookspecs)
        if os.environ.get("NMR_TRACE_HOOKS"):
            self.pm.trace.root.setwriter(lambda msg: sys.stderr.write(msg))
            self.pm.enable_tracing()
        if entry_points:
            self._load_entry_points()
        for path in paths or []:
            self.load_path(path)
        for plugin in plugins or []:
            self.pm.register(plugin)
        self.pm.check_pending()
        self._modules: dict[str, RegisteredModule] | None = None

    def _load_entry_points(self) -> None:
        allow = os.environ.get("NMR_PLUGINS")
        allowed = {x.strip() for x in allow.split(",")} if allow else None
        from importlib.metadata import entry_points

        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if allowed is not None and ep.name not in allowed:
                continue
            if self.pm.get_plugin(ep.name) is not None or self.pm.is_blocked(ep.name):
                continue
            try:
                plugin = ep.load()
            except Exception as exc:  # a broken installed plugin must be named
                raise ConfigurationError(f"impossible de charger le plugin « {ep.name} » ({ep.value}) : {exc}") from exc
            self.pm.register(plugin, name=ep.name)
            dist = getattr(ep, "dist", None)
            if dist is not None:
                self._dists[id(plugin)] = f"{dist.metadata['Name']} {dist.version}"

    def load_path(self, path: Path) -> Any:
        """Load a plugin from a ``.py`` file or a package folder and register it.

        A package folder registers its ``__init__`` when that holds the hook implementations,
        else its ``plugin`` submodule (the layout of packaged plugins)."""
        path = Path(path).resolve()
        if path.is_dir():
            init = path / "__init__.py"
            if not init.exists():
                raise ConfigurationError(f"{path} : un dossier de plugin doit contenir __init__.py")
            name, location, search = path.name, init, [str(path)]
        elif path.suffix == ".py" and path.exists():
            name, location, search = path.stem, path, None
        else:
            raise ConfigurationError(f"{path} : plugin introuvable (fichier .py ou dossier de paquet attendu)")
        mod_name = f"nmr_path_plugin_{name}"
        spec = importlib.util.spec_from_file_location(mod_name, location, submodule_search_locations=search)
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[mod_name]
            raise ConfigurationError(f"impossible de charger le plugin {path} : {exc}") from exc
        if path.is_dir() and not _has_hookimpls(module) and (path / "plugin.py").exists():
            # The packaged layout (``my_package/plugin.py`` named by the entry point): register that module.
            try:
                module = importlib.import_module(f"{mod_name}.plugin")
            except Exception as exc:
                raise ConfigurationError(f"impossible de charger le plugin {path / 'plugin.py'} : {exc}") from exc
        self.pm.register(module, name=f"path:{path}")
        return module

    # -- modules ------------------------------------------------------------------------
    def modules(self) -> dict[str, RegisteredModule]:
        """Every registered module by code (API versions checked, duplicates refused)."""
        if self._modules is not None:
            return self._modules
        found: dict[str, RegisteredModule] = {}
        for impl in self.pm.hook.nmr_register_modules.get_hookimpls():
            specs: list[ModuleSpec] = []
            try:
                impl.function(register=specs.append)
            except Exception as exc:
                raise PluginError(impl.plugin_name, f"échec de l'enregistrement : {exc}") from exc
            for spec in specs:
                if not isinstance(spec, ModuleSpec):
                    raise PluginError(impl.plugin_name, "register() attend un ModuleSpec")
                if not api_compatible(spec.api_version):
                    raise ConfigurationError(
                        f"le module « {spec.code} » (plugin {impl.plugin_name}) a été écrit pour l'API "
                        f"{spec.api_version} ; ce moteur fournit l'API {API_VERSION} (même version majeure et "
                        f"mineure inférieure ou égale requises)"
                    )
                if spec.code in found:
                    raise ConfigurationError(
                        f"le module « {spec.code} » est fourni deux fois "
                        f"({found[spec.code].plugin_name} et {impl.plugin_name})"
                    )
                found[spec.code] = RegisteredModule(
                    spec, impl.plugin, impl.plugin_name, self._dists.get(id(impl.plugin))
                )
        self._modules = dict(sorted(found.items()))
        return self._modules

    def _caller(self, hook_name: str, module: str):
        owner = self.modules()[module].plugin
        others = [p for p in self.pm.get_plugins() if p is not owner]
        return self.pm.subset_hook_caller(hook_name, remove_plugins=others)

    def validate_inputs(self, module: str, tables, context) -> list:
        results = self._caller("nmr_validate_inputs", module)(
            module=self.modules()[module].spec, tables=tables, context=context
        )
        return [p for problems in results if problems for p in problems]

    def calculate(self, module: str, context):
        return self._caller("nmr_calculate", module)(module=self.modules()[module].spec, context=context)

    def synthesisers(self) -> list[str]:
        """Codes of the modules whose plugin implements the optional ``nmr_synthesise`` hook."""
        owners = {id(impl.plugin) for impl in self.pm.hook.nmr_synthesise.get_hookimpls()}
        return [code for code, reg in self.modules().items() if id(reg.plugin) in owners]

    def synthesise(self, module: str, contracts, rng_seed: int, scale, out_dir):
        """Call ``nmr_synthesise`` on the plugin of ``module`` (None when it has none)."""
        return self._caller("nmr_synthesise", module)(
            module=self.modules()[module].spec, contracts=contracts, rng_seed=rng_seed, scale=scale, out_dir=out_dir
        )
