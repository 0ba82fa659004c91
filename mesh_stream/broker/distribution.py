"""Apache Kafka's published jars, fetched once from Maven Central into a cache.

There is no Docker engine on many developer and CI machines, so mesh-stream runs the real
broker from the same jars Apache publishes. Maven resolves ``kafka_2.13`` and its runtime
dependencies (the pom ships inside this package) and copies them into
``<cache_dir>/kafka-<version>/libs``. A folder is only renamed into place once Maven
finished, so a half-done fetch is never mistaken for a usable one.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from mesh_stream.errors import ConfigurationError, KafkaFetchError, ToolMissingError

Progress = Callable[[str], None]

KAFKA_ARTIFACT = "org.apache.kafka:kafka_2.13"


def _silent(_message: str) -> None:
    """A progress callback that says nothing."""


def resource_path(name: str) -> Path:
    """Path of a file shipped in ``mesh_stream/broker/resources``."""
    return Path(str(resources.files("mesh_stream.broker").joinpath("resources", name)))


def require_tool(name: str, purpose: str) -> str:
    """Absolute path of an executable, or a :class:`ToolMissingError` saying what needs it."""
    found = shutil.which(name)
    if found is None:
        raise ToolMissingError(
            f"`{name}` is not on PATH; it is needed to {purpose}. "
            f"Install it (Java 17+ and Apache Maven 3.8+; e.g. `apt-get install "
            f"openjdk-17-jre-headless maven`) or set MESH_BOOTSTRAP_SERVERS to an existing "
            f"Kafka cluster instead."
        )
    return found


@dataclass(frozen=True)
class KafkaDistribution:
    """One Kafka version's jars in the local cache."""

    version: str
    cache_dir: Path

    @property
    def home(self) -> Path:
        return self.cache_dir / f"kafka-{self.version}"

    @property
    def libs_dir(self) -> Path:
        return self.home / "libs"

    @property
    def classpath(self) -> str:
        return str(self.libs_dir / "*")

    def is_fetched(self) -> bool:
        """True once a complete fetch of this version sits in the cache."""
        return (self.libs_dir / f"kafka_2.13-{self.version}.jar").is_file()

    def fetch(self, progress: Progress = _silent, *, force: bool = False) -> Path:
        """Download the jars with Maven unless cached; return the libs folder.

        Maven's own settings apply (``~/.m2/settings.xml``, ``MAVEN_OPTS``,
        ``MAVEN_ARGS``), so a mirror or proxy configured there is used.
        """
        if self.is_fetched() and not force:
            progress(f"Kafka {self.version} jars already cached in {self.libs_dir}")
            return self.libs_dir
        mvn = require_tool("mvn", "fetch Apache Kafka's jars from Maven Central")
        require_tool("java", "run Apache Kafka")
        partial = self.home / "libs.partial"
        shutil.rmtree(partial, ignore_errors=True)
        try:
            partial.mkdir(parents=True)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot create the Kafka jar cache {partial} ({exc.strerror}); "
                f"point MESH_CACHE_DIR at a writable folder"
            ) from exc
        command = [
            mvn,
            "-B",
            "-f",
            str(resource_path("pom.xml")),
            "dependency:copy-dependencies",
            f"-Dkafka.version={self.version}",
            f"-DoutputDirectory={partial}",
            "-DincludeScope=runtime",
        ]
        progress(
            f"Fetching Apache Kafka {self.version} ({KAFKA_ARTIFACT}) and its runtime "
            f"dependencies from Maven Central into {self.libs_dir} ..."
        )
        tail: list[str] = []
        downloaded = 0
        with subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        ) as proc:
            assert proc.stdout is not None
            for raw_line in proc.stdout:
                line = raw_line.rstrip()
                tail = [*tail[-30:], line]
                if "Downloaded from" in line:
                    downloaded += 1
                    if downloaded % 25 == 1:
                        url = next((w for w in line.split() if w.startswith("http")), "")
                        name = url.rsplit("/", 1)[-1]
                        progress(f"  {downloaded} files downloaded so far (latest: {name})")
            returncode = proc.wait()
        if returncode != 0:
            shutil.rmtree(partial, ignore_errors=True)
            errors = [line for line in tail if "ERROR" in line] or tail[-10:]
            raise KafkaFetchError(
                f"Maven could not fetch {KAFKA_ARTIFACT}:{self.version} (exit {returncode}).\n"
                + "\n".join(errors[-12:])
                + "\nCheck network access to Maven Central, the mirrors and proxies in "
                "~/.m2/settings.xml, and that MESH_KAFKA_VERSION names a published version."
            )
        if self.libs_dir.exists():
            shutil.rmtree(self.libs_dir)
        partial.rename(self.libs_dir)
        jars = len(list(self.libs_dir.glob("*.jar")))
        progress(f"Kafka {self.version}: {jars} jars ready in {self.libs_dir}")
        return self.libs_dir
