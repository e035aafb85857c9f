# ruff: noqa: E501  (the tables are verbatim copies; their comment lines are long)
"""Partition tables used by the tests, as text: the ones ESP-IDF ships and the seeds' tables.

ESP-IDF's files are copied verbatim from components/partition_table/ (espressif/esp-idf); the
seed tables come from the project's seeds (000: "Creating Unique Factory Data Images", 001:
esp-jumpstart 7_mfg/partitions.csv) and esp-homekit-sdk's partitions_hap.csv.
"""

from __future__ import annotations

SINGLEAPP = """\
# Name,   Type, SubType, Offset,  Size
# Note: if you change the phy_init or app partition offset, make sure to change the offset in Kconfig.projbuild
nvs,      data, nvs,     0x9000,  0x6000
phy_init, data, phy,     0xf000,  0x1000
factory,  app,  factory, 0x10000, 1M
"""

SINGLEAPP_COREDUMP = """\
# Name,   Type, SubType, Offset,  Size
# Note: if you have increased the bootloader size, make sure to update the offsets to avoid overlap
nvs,      data, nvs,           ,  0x6000
phy_init, data, phy,           ,  0x1000
factory,  app,  factory,       ,  1M
coredump, data, coredump,      ,  64K
"""

SINGLEAPP_LARGE = """\
# Name,   Type, SubType, Offset,  Size, Flags
# Note: if you have increased the bootloader size, make sure to update the offsets to avoid overlap
nvs,      data, nvs,     ,        0x6000,
phy_init, data, phy,     ,        0x1000,
factory,  app,  factory, ,        1500K,
"""

SINGLEAPP_LARGE_COREDUMP = """\
# Name,   Type, SubType, Offset,  Size
# Note: if you have increased the bootloader size, make sure to update the offsets to avoid overlap
nvs,      data, nvs,           ,  0x6000
phy_init, data, phy,           ,  0x1000
factory,  app,  factory,       ,  1500K
coredump, data, coredump,      ,  64K
"""

SINGLEAPP_ENCR_NVS = """\
# Name,   Type, SubType, Offset,  Size, Flags
# Note: if you have increased the bootloader size, make sure to update the offsets to avoid overlap
nvs,      data, nvs,     ,        0x6000,
phy_init, data, phy,     ,        0x1000,
factory,  app,  factory, ,        1M,
nvs_key,  data, nvs_keys,,        0x1000, encrypted
"""

TWO_OTA = """\
# Name,   Type, SubType, Offset,   Size, Flags
# Note: if you change the phy_init or app partition offset, make sure to change the offset in Kconfig.projbuild
nvs,      data, nvs,     0x9000,  0x4000
otadata,  data, ota,     0xd000,  0x2000
phy_init, data, phy,     0xf000,  0x1000
factory,  app,  factory, 0x10000,  1M
ota_0,    app,  ota_0,   ,         1M
ota_1,    app,  ota_1,   ,         1M
"""

TWO_OTA_COREDUMP = """\
# Name,   Type, SubType, Offset,   Size
# Note: if you change the phy_init or app partition offset, make sure to change the offset in Kconfig.projbuild
nvs,      data, nvs,     ,         0x4000
otadata,  data, ota,     ,         0x2000
phy_init, data, phy,     ,         0x1000
factory,  0,    0,       ,         1M
coredump, data, coredump,,         64K
ota_0,    0,    ota_0,   ,         1M
ota_1,    0,    ota_1,   ,         1M
"""

TWO_OTA_LARGE = """\
# Name,   Type, SubType, Offset,   Size, Flags
# Note: if you have increased the bootloader size, make sure to update the offsets to avoid overlap
nvs,      data, nvs,     ,        0x6000,
otadata,  data, ota,     ,        0x2000,
phy_init, data, phy,     ,        0x1000,
ota_0,    app,  ota_0,   ,        1700K,
ota_1,    app,  ota_1,   ,        1700K,
"""

TWO_OTA_ENCR_NVS = """\
# Name,   Type, SubType, Offset,   Size, Flags
# Note: if you have increased the bootloader size, make sure to update the offsets to avoid overlap
nvs,      data, nvs,     ,        0x4000,
otadata,  data, ota,     ,        0x2000,
phy_init, data, phy,     ,        0x1000,
factory,  app,  factory, ,        1M,
ota_0,    app,  ota_0,   ,        1M,
ota_1,    app,  ota_1,   ,        1M,
nvs_key,  data, nvs_keys,,        0x1000, encrypted
"""

# seed 000 (the blog post's table; the page's markup ran two lines together, restored here)
SEED_000 = """\
# Name, Type, SubType, Offset, Size, Flags
# Note: if you change the phy_init or app partition offset, make sure to change the offset in Kconfig.projbuild
nvs, data, nvs, 0x9000, 0x6000,
phy_init, data, phy, 0xf000, 0x1000,
fctry, data, nvs, 0x10000, 0x6000,
factory, app, factory, 0x20000, 1M,
"""

# seed 001: the book (esp-jumpstart 7_mfg/partitions.csv), flashed with write_flash 0x340000
SEED_001 = """\
# Name,   Type, SubType, Offset,  Size, Flags
# Note: Firmware partition offset needs to be 64K aligned, initial 36K (9 sectors) are reserved for bootloader and partition table
nvs,      data, nvs,     ,          0x6000,
otadata,  data, ota,     ,          0x2000
phy_init, data, phy,     ,          0x1000,
ota_0,    app,  ota_0,   0x20000,   1600K,
ota_1,    app,  ota_1,   ,          1600K,
fctry,    data, nvs,     0x340000,  0x6000
"""

# esp-homekit-sdk examples/data_tlv8/partitions_hap.csv (note the comment in a 7th column)
HOMEKIT = """\
# Name,   Type, SubType, Offset,  Size, Flags
# Note: Firmware partition offset needs to be 64K aligned, initial 36K (9 sectors) are reserved for bootloader and partition table
sec_cert,  0x3F, ,0xd000,    0x3000, ,  # Never mark this as an encrypted partition
nvs,      data, nvs,     0x10000,   0x6000,
otadata,  data, ota,     ,          0x2000
phy_init, data, phy,     ,          0x1000,
ota_0,    app,  ota_0,   0x20000,   1600K,
ota_1,    app,  ota_1,   ,          1600K,
factory_nvs, data,   nvs,     0x340000,  0x6000
nvs_keys, data, nvs_keys,0x346000,  0x1000
"""

ALL = {
    "singleapp": SINGLEAPP,
    "singleapp_coredump": SINGLEAPP_COREDUMP,
    "singleapp_large": SINGLEAPP_LARGE,
    "singleapp_large_coredump": SINGLEAPP_LARGE_COREDUMP,
    "singleapp_encr_nvs": SINGLEAPP_ENCR_NVS,
    "two_ota": TWO_OTA,
    "two_ota_coredump": TWO_OTA_COREDUMP,
    "two_ota_large": TWO_OTA_LARGE,
    "two_ota_encr_nvs": TWO_OTA_ENCR_NVS,
    "seed_000": SEED_000,
    "seed_001": SEED_001,
    "homekit": HOMEKIT,
}
