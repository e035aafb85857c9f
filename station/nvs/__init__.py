"""NVS partition images: encode (byte-identical to Espressif's generator), decode, encrypt.

The public API of the layer; see docs/nvs.md. Modules: ``model`` (records and constants),
``encoder``, ``decoder``, ``crypto`` (XTS, key partition, HMAC), ``csvfile``, ``commands``.

May import station.errors and station.files only (a bottom layer: everything above uses it).
"""

from station.nvs.crypto import (
    generate_hmac_key,
    generate_keys,
    hmac_derive_keys,
    key_partition_image,
    parse_key_partition,
)
from station.nvs.csvfile import read_nvs_csv
from station.nvs.decoder import NvsImage, NvsItem, PageInfo, decode_image
from station.nvs.encoder import check_entries, data_pages, encode_image, parse_size
from station.nvs.model import NvsEntry, XtsKeys

__all__ = [
    "NvsEntry",
    "NvsImage",
    "NvsItem",
    "PageInfo",
    "XtsKeys",
    "check_entries",
    "data_pages",
    "decode_image",
    "encode_image",
    "generate_hmac_key",
    "generate_keys",
    "hmac_derive_keys",
    "key_partition_image",
    "parse_key_partition",
    "parse_size",
    "read_nvs_csv",
]
