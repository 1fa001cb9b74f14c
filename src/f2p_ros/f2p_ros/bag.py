"""rosbag2 bags in MCAP storage, written and read with the ``rosbags`` library.

Writing (:class:`BagWriter`): a rosbag2 folder (``metadata.yaml`` + ``<name>.mcap``) that
``ros2 bag info / play`` reads on a robot. Messages arrive serialized (CDR, as a raw
subscription hands them over) and are written as they are; each topic's schema is the message
definition from a ``rosbags`` typestore (``Stores.ROS2_<DISTRO>``, the distro of this install)
with f2p's own types registered from the installed ``.msg`` files of ``f2p_interfaces``. The
open chunk is closed and fsynced every ``flush`` (the recorder calls it on a period), so a
recorder killed loses at most the messages since the last flush.

What other ROS tools read of it, as rosbag2 itself writes it:

* ``metadata.yaml`` version 8 (:data:`METADATA_VERSION`): Humble's rosbag2 reads each topic's
  ``offered_qos_profiles`` as a YAML string and fails on version 9's list ("bad conversion");
  Jazzy and Kilted read version 8 as well (rosbag2_storage's yaml.hpp, metadata_io.cpp).
* each topic's ``offered_qos_profiles``: the QoS its publishers offered (:func:`bag_qos`), so
  ``ros2 bag play`` republishes a latched topic latched (reliable, transient local) and a late
  subscriber (rviz's MarkerArray display) still gets it, without a QoS override file.
* each MCAP channel's metadata: ``offered_qos_profiles`` and ``topic_type_hash`` (the type's
  RIHS01 hash), as rosbag2_storage_mcap writes them since Jazzy; ``type_description_hash`` in
  ``metadata.yaml``.
* ``ros_distro``: the distro whose wheels wrote it (:data:`ROS_DISTRO`), not the writing library's
  name.

Times: one time base per bag, the graph's. A message's log time is when the recorder received
it, on its node's clock (the system clock; /clock with ``use_sim_time``, as ``ros2 bag record
--use-sim-time``), and header stamps are their producers' on the same base: a robot's drivers and
f2p's nodes stamp with the system clock, and the simulators stamp with it too unless the graph
runs on simulated time (``stamp_with_sim_time``, which f2p-bringup and the launch files set from
``use_sim_time``). So header stamps and log times of a bag differ only by delivery delays (and a
latched message's age when the recorder subscribed); replay with ``--clock`` for a sim-time bag.

Reading (:class:`BagReader`): the messages of a bag in file order, decoded by the same
generated ``rclpy`` classes the nodes use. A bag whose writer was killed has no
``metadata.yaml`` and no MCAP summary, and a damaged file stops part-way: the reader walks the
MCAP records itself (the format is documented at mcap.dev/spec), yields everything before the
damage and says where and why it stopped in :attr:`BagReader.damage`, instead of refusing the
whole bag as an indexed reader does.
"""
from __future__ import annotations

import importlib
import mmap
import os
import struct
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import yaml
from ament_index_python.packages import get_package_share_directory

from f2p_common.files import fsync_dir

MAGIC = b"\x89MCAP0\r\n"
#: MCAP opcodes used here (mcap.dev/spec).
OP_HEADER, OP_FOOTER, OP_SCHEMA, OP_CHANNEL, OP_MESSAGE, OP_CHUNK, OP_DATA_END = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x0F
#: ``ros_distro`` of the bags written here: the install's (``ROS_DISTRO``, which a ROS
#: ``setup.bash`` and f2p's ``env.sh`` set), else kilted, the default distro of f2p's wheels.
ROS_DISTRO = os.environ.get("ROS_DISTRO") or "kilted"
#: The ``rosbags`` typestore of that distro (message definitions of std types); kilted's for a
#: distro ``rosbags`` does not know.
STORE = f"ROS2_{ROS_DISTRO.upper()}" if ROS_DISTRO in ("humble", "iron", "jazzy", "kilted") else "ROS2_KILTED"
#: rosbag2's metadata version written: the newest Humble's rosbag2 can read (module docstring).
METADATA_VERSION = 8


class BagError(RuntimeError):
    """The bag cannot be written or read at all (missing, not MCAP, exists already)."""


def typestore():
    """The ``rosbags`` typestore with f2p_interfaces' messages registered from their ``.msg`` files."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore
    store = get_typestore(getattr(Stores, STORE))
    folder = Path(get_package_share_directory("f2p_interfaces")) / "msg"
    types = {}
    for f in sorted(folder.glob("*.msg")):
        types.update(get_types_from_msg(f.read_text(), f"f2p_interfaces/msg/{f.stem}"))
    store.register(types)
    return store


def message_class(msgtype: str):
    """The generated rclpy class of ``pkg/msg/Name``."""
    pkg, kind, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{pkg}.{kind}"), name)


def msgtype_of(cls) -> str:
    """``pkg/msg/Name`` of a generated rclpy message class."""
    return f"{cls.__module__.split('.')[0]}/msg/{cls.__name__}"


#: Where a Chunk record's uncompressed_crc lies from the record's start: opcode (1), record
#: length (8), message start and end time (8 + 8), uncompressed size (8) (mcap.dev/spec).
_CHUNK_CRC_OFFSET = 1 + 8 + 8 + 8 + 8


def _write_chunk_crcs(storage) -> None:
    """Make the rosbags MCAP ``storage`` write each chunk's CRC-32 (it writes 0, "no CRC", so a
    flipped byte inside a chunk went unnoticed, issue 43): its ``close_chunk`` is wrapped to patch
    the field of the record it has just written; readers (this module's, mcap's, rosbag2's)
    check it."""
    close_chunk = storage.close_chunk

    def close_chunk_with_crc() -> None:
        crc = zlib.crc32(storage.chunk.bio.getvalue())
        start = storage.bio.tell()
        close_chunk()
        end = storage.bio.tell()
        storage.bio.seek(start + _CHUNK_CRC_OFFSET)
        storage.bio.write(struct.pack("<I", crc))
        storage.bio.seek(end)
    storage.close_chunk = close_chunk_with_crc


def bag_qos(profile):
    """The rosbags ``Qos`` of an rclpy ``QoSProfile`` (or ``TopicEndpointInfo.qos_profile``), as
    rosbag2 records a publisher's offer. Enum values are rmw's in both (an UNKNOWN one becomes
    rosbag2's default); a deadline, lifespan or lease left infinite or at its default is 0 s /
    0 ns, the "unspecified" every distro's rosbag2 parses."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, LivelinessPolicy, ReliabilityPolicy
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    def duration(d) -> QosTime:
        ns = 0 if d is None else int(d.nanoseconds)
        return QosTime(0, 0) if ns <= 0 or ns >= 2 ** 62 else QosTime(ns // 10 ** 9, ns % 10 ** 9)
    return Qos(QosHistory(int(profile.history if profile.history != HistoryPolicy.UNKNOWN else HistoryPolicy.KEEP_LAST)),
               int(profile.depth),
               QosReliability(int(profile.reliability if profile.reliability != ReliabilityPolicy.UNKNOWN
                                  else ReliabilityPolicy.RELIABLE)),
               QosDurability(int(profile.durability if profile.durability != DurabilityPolicy.UNKNOWN
                                 else DurabilityPolicy.VOLATILE)),
               duration(profile.deadline), duration(profile.lifespan),
               QosLiveliness(int(profile.liveliness if profile.liveliness != LivelinessPolicy.UNKNOWN
                                 else LivelinessPolicy.AUTOMATIC)),
               duration(profile.liveliness_lease_duration), bool(profile.avoid_ros_namespace_conventions))


def _write_channel_type_hashes(storage) -> None:
    """Make the rosbags MCAP ``storage`` write each channel's ``topic_type_hash`` beside its
    ``offered_qos_profiles`` (rosbags writes the QoS only; rosbag2_storage_mcap writes both since
    Jazzy, and a reader of the ``.mcap`` alone takes the hash from there)."""
    from io import BytesIO

    from rosbags.rosbag2.storage_mcap import Channel, write_channel, write_string

    def add_connection(connection, offered_qos_profiles: str) -> None:
        metadata = BytesIO()
        for key, value in (("offered_qos_profiles", offered_qos_profiles), ("topic_type_hash", connection.digest)):
            write_string(metadata, key)
            write_string(metadata, value)
        storage.channels.append(Channel(connection.id, connection.msgtype, connection.topic,
                                        connection.ext.serialization_format, metadata.getvalue()))
        storage.channel_stats[connection.id] = 0
        write_channel(storage.chunk.bio, storage.channels[-1], storage.schemas)
    storage.add_connection = add_connection


def _with_ros_distro(metadata: str) -> str:
    """rosbags' metadata text with the distro that wrote it (rosbags writes its own name)."""
    return metadata.replace("ros_distro: rosbags", f"ros_distro: {ROS_DISTRO}")


class BagWriter:
    """A rosbag2 bag (MCAP) being written; thread-safe. ``path`` must not exist yet."""

    def __init__(self, path: str | Path):
        from rosbags.rosbag2 import StoragePlugin, Writer
        self.path = Path(path)
        if self.path.exists():
            raise BagError(f"{self.path} exists already: a bag is never overwritten")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._store = typestore()
        self._writer = Writer(self.path, version=METADATA_VERSION, storage_plugin=StoragePlugin.MCAP)
        self._writer.open()
        storage = self._writer.storage
        _write_chunk_crcs(storage)
        _write_channel_type_hashes(storage)
        close_storage = storage.close
        storage.close = lambda version, metadata: close_storage(version, _with_ros_distro(metadata))
        self._writer.storage.bio.flush()          # the MCAP header on disk at once: a valid start
        self._connections: dict[str, object] = {}
        self._lock = threading.Lock()
        self.messages = 0
        self.bytes = 0
        self.counts: dict[str, int] = {}

    def add_topic(self, topic: str, msgtype: str, offered_qos: Sequence = ()) -> None:
        """Declare ``topic`` with its type ``pkg/msg/Name`` (KeyError: a type the typestore lacks)
        and the QoS profiles its publishers offer (rclpy ``QoSProfile`` s; none: rosbag2's
        default, reliable and volatile)."""
        with self._lock:
            if topic in self._connections:
                return
            if msgtype not in self._store.fielddefs:
                raise KeyError(f"{msgtype} is not a known message type")
            self._connections[topic] = self._writer.add_connection(
                topic, msgtype, typestore=self._store, offered_qos_profiles=[bag_qos(q) for q in offered_qos])
            self.counts[topic] = 0

    def write(self, topic: str, stamp_ns: int, data: bytes) -> None:
        """Write one serialized (CDR) message of a declared topic, received at ``stamp_ns``."""
        with self._lock:
            if self._writer.storage is None:
                raise BagError(f"{self.path} is closed")
            self._writer.write(self._connections[topic], int(stamp_ns), data)
            self.messages += 1
            self.bytes += len(data)
            self.counts[topic] += 1

    def flush(self) -> None:
        """Put everything written so far on disk (close the open MCAP chunk, fsync)."""
        with self._lock:
            storage = self._writer.storage
            if storage is None:
                return
            if storage.chunk.bio.tell():
                storage.close_chunk()
            storage.bio.flush()
            os.fsync(storage.bio.fileno())

    def close(self) -> None:
        """Finish the bag: MCAP summary and footer, ``metadata.yaml``; fsynced."""
        with self._lock:
            if self._writer.storage is None:
                return
            mcap = self._writer.storage.path
            self._writer.close()
            info = self.path / "metadata.yaml"
            text = info.read_text()
            if "ros_distro: rosbags" in text:              # rosbags writes its name: the distro's, atomically
                tmp = info.with_suffix(".yaml.tmp")
                tmp.write_text(_with_ros_distro(text))
                with open(tmp, "rb") as fh:
                    os.fsync(fh.fileno())
                os.replace(tmp, info)
        for f in (mcap, self.path / "metadata.yaml"):
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        fsync_dir(self.path)


@dataclass
class BagMessage:
    topic: str
    msgtype: str
    stamp_ns: int
    data: bytes

    def decode(self):
        """The message as the generated rclpy class (the one the nodes receive)."""
        from rclpy.serialization import deserialize_message
        return deserialize_message(self.data, message_class(self.msgtype))


class _Damaged(Exception):
    pass


class _Cursor:
    def __init__(self, buf: memoryview, pos: int = 0):
        self.buf, self.pos = buf, pos

    def take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > len(self.buf):
            raise _Damaged(f"ends inside a record ({len(self.buf) - self.pos} of {n} bytes left)")
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out

    def u16(self) -> int:
        return struct.unpack("<H", self.take(2))[0]

    def u32(self) -> int:
        return struct.unpack("<I", self.take(4))[0]

    def u64(self) -> int:
        return struct.unpack("<Q", self.take(8))[0]

    def string(self) -> str:
        return bytes(self.take(self.u32())).decode("utf-8")

    def left(self) -> int:
        return len(self.buf) - self.pos


class BagReader:
    """The messages of a rosbag2 MCAP bag (a bag folder, or one ``.mcap`` file), damaged or not.

    ``messages(topics)`` yields :class:`BagMessage` in file order; afterwards :attr:`damage` is
    None for an intact bag, else where the readable part ended and why (the messages before it
    were all yielded). BagError when there is nothing to read at all."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if self.path.is_dir():
            self.files = self._files_of(self.path)
        elif self.path.is_file():
            self.files = [self.path]
        else:
            raise BagError(f"no bag at {self.path}")
        self.damage: str | None = None
        self.topics: dict[str, str] = {}

    @staticmethod
    def _files_of(folder: Path) -> list[Path]:
        meta = folder / "metadata.yaml"
        if meta.is_file():
            try:
                info = yaml.safe_load(meta.read_text())["rosbag2_bagfile_information"]
                if info.get("storage_identifier") != "mcap":
                    raise BagError(f"{folder} is stored as {info.get('storage_identifier')!r}; f2p reads MCAP bags")
                return [folder / f for f in info["relative_file_paths"]]
            except (yaml.YAMLError, KeyError, TypeError):
                pass                                  # a damaged metadata.yaml: the files speak for themselves
        files = sorted(folder.glob("*.mcap"))
        if not files:
            raise BagError(f"{folder} holds no .mcap file")
        return files

    def messages(self, topics: Iterable[str] | None = None, msgtypes: Iterable[str] | None = None
                 ) -> Iterator[BagMessage]:
        """The messages of ``topics`` and of ``msgtypes`` (``pkg/msg/Name``; None: all)."""
        topics = set(topics) if topics is not None else None
        msgtypes = set(msgtypes) if msgtypes is not None else None
        self.damage = None
        for f in self.files:
            try:
                with open(f, "rb") as fh:
                    data = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if os.fstat(fh.fileno()).st_size else b""
            except (OSError, ValueError) as exc:
                raise BagError(f"cannot read {f}: {exc}") from None
            if data[:8] != MAGIC:
                raise BagError(f"{f} is not an MCAP file (bad magic)")
            schemas: dict[int, str] = {}
            channels: dict[int, tuple[str, str]] = {}
            cur = _Cursor(memoryview(data), 8)
            self._finished = False
            try:
                for m in self._records(cur, schemas, channels):
                    if (topics is None or m.topic in topics) and (msgtypes is None or m.msgtype in msgtypes):
                        yield m
                if not self._finished:
                    raise _Damaged("it ends without its summary (the writer did not finish: killed, or the disk "
                                   "filled)")
                if data[-8:] != MAGIC:
                    cur.pos = len(data)
                    raise _Damaged("its summary is cut short; every message was read (ros2 bag needs "
                                   "`ros2 bag reindex`)")
            except _Damaged as exc:
                self.damage = f"{f.name} is damaged at byte {cur.pos} of {len(data)}: {exc}"
                return

    def _records(self, cur: _Cursor, schemas, channels) -> Iterator[BagMessage]:
        while cur.left():
            start = cur.pos
            op = cur.take(1)[0]
            length = cur.u64()
            if length > cur.left():
                raise _Damaged(f"the record at byte {start} is cut short ({cur.left()} of {length} bytes)")
            body = _Cursor(cur.take(length))
            if op == OP_SCHEMA:
                sid, name = body.u16(), body.string()
                schemas[sid] = name
            elif op == OP_CHANNEL:
                cid, sid, topic = body.u16(), body.u16(), body.string()
                if sid not in schemas:
                    raise _Damaged(f"channel {topic!r} refers to an unknown schema {sid}")
                channels[cid] = (topic, schemas[sid])
                self.topics[topic] = schemas[sid]
            elif op == OP_MESSAGE:
                cid = body.u16()
                body.u32()
                log_time = body.u64()
                body.u64()
                if cid not in channels:
                    raise _Damaged(f"message of an unknown channel {cid}")
                topic, msgtype = channels[cid]
                yield BagMessage(topic, msgtype, log_time, bytes(body.take(body.left())))
            elif op == OP_CHUNK:
                body.u64(), body.u64()
                size, crc = body.u64(), body.u32()
                compression = body.string()
                payload = body.take(body.u64())
                inner = self._decompress(payload, compression, size)
                if crc and zlib.crc32(inner) != crc:
                    raise _Damaged(f"chunk at byte {start} fails its CRC")
                yield from self._records(_Cursor(memoryview(inner)), schemas, channels)
            elif op in (OP_DATA_END, OP_FOOTER):
                self._finished = True
                return
            elif op == 0:
                raise _Damaged(f"invalid record opcode 0 at byte {start}")

    @staticmethod
    def _decompress(payload: memoryview, compression: str, size: int) -> bytes:
        if compression == "":
            return bytes(payload)
        try:
            if compression == "zstd":
                import zstandard
                return zstandard.ZstdDecompressor().decompress(bytes(payload), max_output_size=size)
            if compression == "lz4":
                import lz4.frame
                return lz4.frame.decompress(bytes(payload))
        except Exception as exc:                      # noqa: BLE001  a corrupt compressed chunk
            raise _Damaged(f"a {compression} chunk does not decompress: {exc}") from None
        raise _Damaged(f"unsupported chunk compression {compression!r}")


def read_messages(path: str | Path, topics: Iterable[str] | None = None, msgtypes: Iterable[str] | None = None
                  ) -> tuple[list[BagMessage], str | None]:
    """Every message of ``topics`` and ``msgtypes`` (all when None) in the bag, and the damage
    (None if intact)."""
    reader = BagReader(path)
    found = list(reader.messages(topics, msgtypes))
    return found, reader.damage
