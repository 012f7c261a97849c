"""Rebuild tests/corpus/ from the public repositories it comes from (run by hand, once;
never by the tests, which need neither LibreOffice nor the network).

    python tests/corpus/make_expected.py MIRRORS_DIR

MIRRORS_DIR holds bare git mirrors named owner+name/repo (e.g. apache+poi/repo). Each
file is copied from the commit listed in SOURCES, LibreOffice (soffice --headless)
converts every sheet to CSV as it shows the cells (en-US), and manifest.json records the
origin, the licence and what bulk-sync does with the file (loads, or the message it
refuses it with, and the exit code of a dry run).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
FILES = HERE / "files"
LIBREOFFICE = HERE / "libreoffice"

REPOS = {
    "apache/poi": ("a528d43590b3f71aa94310de881a35af887fdd0f", "Apache-2.0"),
    "roo-rb/roo": ("20d424f8bf96f20929a8bbf4184e059cfd029531", "MIT"),
    "dilshod/xlsx2csv": ("9b1fa03130d3b0af7224d8e52b4336d39b005398", "MIT"),
    "PHPOffice/PhpSpreadsheet": ("11645d54ac203be6693309f0cd5153a4dfbf3761", "MIT"),
    "python-excel/xlrd": ("3a19d22014d7b3f3041b7188d21a653c18c709bf", "BSD-3-Clause"),
    "dimastbk/python-calamine": ("76bedd023625efd05f6b04fe89fcc82a9af65fe7", "MIT"),
    "tafia/calamine": ("263762c8e98ef25da8511d9c5ea1783493e3bf6d", "MIT"),
    "SheetJS/test_files": ("fb4bdf0158ba308c182f82663b61607bb79cd4b5", "Apache-2.0"),
}

# (repository, path, why it is here: the issue 15 item it shows)
SOURCES = [
    ("dilshod/xlsx2csv", "test/float2.xlsx", "A1 zero-padded ids, A2 percent, A6"),
    ("dilshod/xlsx2csv", "test/formatted_inline_string.xlsx", "A5 rich-text runs"),
    ("roo-rb/roo", "test/files/zero-padded-number.xlsx", "A1 zero-padded ids"),
    ("roo-rb/roo", "test/files/richtext_example.xlsx", "A5 rich-text runs"),
    ("python-excel/xlrd", "tests/samples/Formate.xls", "A2/A3 XLS formats"),
    ("apache/poi", "test-data/spreadsheet/57181.xlsm", "A3 conditional [hh]:mm:ss, A6"),
    ("apache/poi", "test-data/spreadsheet/ex41187-19267.xls", "A5 UTF-16 XLS strings"),
    ("apache/poi", "test-data/spreadsheet/49609.xlsx", "B9 pre-check"),
    ("apache/poi", "test-data/spreadsheet/64420.xlsm", "B10 Excel 4 macro sheet"),
    ("apache/poi", "test-data/spreadsheet/xlmmacro.xlsm", "B10 Excel 4 macro sheet"),
    ("apache/poi", "test-data/poifs/protect.xlsx", "B11 default password (xlsx)"),
    ("apache/poi", "test-data/spreadsheet/protected_passtika.xlsx", "B11 password"),
    ("apache/poi", "test-data/spreadsheet/50833.xls", "B11 default password (xls)"),
    ("apache/poi", "test-data/spreadsheet/xor-encryption-abc.xls", "B11 password (xls)"),
    ("apache/poi", "test-data/spreadsheet/testEXCEL_3.xls", "B10 Excel 3 file"),
    ("apache/poi", "test-data/spreadsheet/testEXCEL_4.xls", "B10 Excel 4 file"),
    ("apache/poi", "test-data/spreadsheet/54764.xlsx", "XML entity bomb"),
    ("dimastbk/python-calamine", "tests/data/base.ods", "A3 ODS duration"),
    ("tafia/calamine", "tests/sheet_name_parsing.xls", "A5 UTF-16 XLS strings"),
    ("tafia/calamine", "tests/biff5-rich-text-string.xls", "A5 BIFF5 code page"),
    ("tafia/calamine", "tests/issue_530.xlsx", "B9 pre-check"),
    ("tafia/calamine", "tests/minimal_package.xlsx", "B9 pre-check"),
    (
        "PHPOffice/PhpSpreadsheet",
        "tests/data/Reader/XLSX/Zip-Windows-Directory-Separator.xlsx",
        "B9 backslashes",
    ),
    (
        "PHPOffice/PhpSpreadsheet",
        "tests/data/Reader/XLSX/rootZipFiles.xlsx",
        "B9 parts at the root",
    ),
    ("PHPOffice/PhpSpreadsheet", "tests/data/Reader/XLSX/issue.3730.xlsx", "B9 pre-check"),
    (
        "PHPOffice/PhpSpreadsheet",
        "tests/data/Reader/XLS/maccentraleurope.biff5.xls",
        "B10 BIFF5 code page 10029",
    ),
    ("PHPOffice/PhpSpreadsheet", "tests/data/Reader/XLSX/utf16be.xlsx", "B10 UTF-16 XML parts"),
    ("PHPOffice/PhpSpreadsheet", "tests/data/Reader/Ods/RepeatedDataCells.ods", "B10 indented ODS"),
    (
        "PHPOffice/PhpSpreadsheet",
        "tests/data/Reader/Ods/nomimetype.ods",
        "B10 ODS without mimetype",
    ),
    ("PHPOffice/PhpSpreadsheet", "tests/data/Reader/XLS/pwtest3.xls", "B11 default password (xls)"),
    ("SheetJS/test_files", "xlsx-stream-d-date-cell.xlsx", 'ISO 8601 date cell (t="d", ...Z)'),
]

SOFFICE_CSV = "csv:Text - txt - csv (StarCalc):44,34,76,1,,1033,false,true,true,false,false,-1"


def main() -> None:
    mirrors = Path(sys.argv[1])
    sys.path.insert(0, str(HERE.parents[1] / "src"))
    from bulk_sync.errors import InputError
    from bulk_sync.loading.workbook import sheet_texts

    FILES.mkdir(exist_ok=True)
    shutil.rmtree(LIBREOFFICE, ignore_errors=True)
    LIBREOFFICE.mkdir()
    manifest = []
    for repo, path, why in SOURCES:
        commit, licence = REPOS[repo]
        git_dir = mirrors / repo.replace("/", "+") / "repo"
        data = subprocess.run(
            ["git", "--git-dir", str(git_dir), "show", f"{commit}:{path}"],
            check=True,
            capture_output=True,
        ).stdout
        name = Path(path).name
        (FILES / name).write_bytes(data)
        with tempfile.TemporaryDirectory() as out:
            subprocess.run(
                [
                    "soffice",
                    "--headless",
                    "--convert-to",
                    SOFFICE_CSV,
                    "--outdir",
                    out,
                    str(FILES / name),
                ],
                capture_output=True,
                timeout=120,
                check=False,
            )
            shown = sorted(Path(out).glob("*.csv"))
            if shown:
                (LIBREOFFICE / name).mkdir()
                for csv_file in shown:
                    shutil.copy(csv_file, LIBREOFFICE / name / csv_file.name)
        entry: dict[str, object] = {
            "file": name,
            "repository": repo,
            "path": path,
            "commit": commit,
            "licence": licence,
            "why": why,
            "libreoffice": bool(shown),
        }
        try:
            texts = sheet_texts(FILES / name)
            entry["outcome"] = "loads"
            entry["cells"] = sum(len(c) for c in texts.values())
        except (InputError, ValueError) as exc:
            entry["outcome"] = "refused"
            entry["message"] = str(exc)
        manifest.append(entry)
        print(name, entry["outcome"], entry.get("cells", entry.get("message")))
    (HERE / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
