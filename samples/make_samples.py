"""Write the sample inputs: samples/customers.csv and samples/customers.xlsx.

    python samples/make_samples.py

Both files are committed; rerun this after changing the data below. The data is made
up (the customer ids only look like Portuguese tax numbers). Each file has a few rows
that validation must refuse, marked ``# invalid`` below, so a dry run shows what a
report of problems looks like.
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import Font

HERE = Path(__file__).resolve().parent

MANAGERS = ["João Gonçalves", "Inês Araújo", "Sérgio Conceição", "Márcia Guimarães"]
REGIONS = ["Região Norte", "Região Centro", "Lisboa e Vale do Tejo", "Alentejo", "Algarve"]
SEGMENTS = ["Retalho", "Indústria", "Serviços", "Construção", "Particular"]
CHANNELS = ["email", "carta", "SMS", "telefone"]

# Companies (ids starting with 5) and people (ids starting with 1-2) of the CSV sample.
CSV_CUSTOMERS = [
    ("500100267", "Padaria Pão Quente, Lda."),
    ("500211358", "Metalúrgica do Ave, S.A."),
    ("500322449", "Construções Gonçalves & Filhos, Lda."),
    ("500433530", "Farmácia São João"),
    ("500544621", "Têxteis Guimarães, S.A."),
    ("500655712", "Café Central de Évora"),
    ("500766803", "Transportes Lusitânia, Lda."),
    ("500877994", "Óptica Conceição"),
    ("500988085", "Vinhos do Douro Reunidos, S.A."),
    ("501099176", "Clínica Dentária Sorriso, Lda."),
    ("501200267", "Livraria Camões"),
    ("501311358", "Cerâmica de Águeda, Lda."),
    ("501422449", "Pastelaria Belém Doce"),
    ("501533530", "Oficina Auto Magalhães"),
    ("501644621", "Hotel Miramar do Algarve, S.A."),
    ("501755712", "Supermercado Económico, Lda."),
    ("501866803", "Gráfica Açoriana"),
    ("501977994", "Mármores de Estremoz, S.A."),
    ("502088085", "Escola de Condução Avenida"),
    ("502199176", "Lavandaria Água Limpa"),
    ("502300267", "Cortiças do Sul, Lda."),
    ("502411358", "Restaurante O Pescador"),
    ("502522449", "Papelaria Guimarães & Irmão"),
    ("502633530", "Serralharia Fernandes"),
    ("502744621", "Agência de Viagens Caravela, Lda."),
    ("502855712", "Ginásio Força Máxima"),
    ("502966803", "Florista Jardim d'Ouro"),
    ("503077994", "Sapataria São Bento"),
    ("503188085", "Talho Conceição & Sousa"),
    ("503299176", "Quinta da Ribeira, Sociedade Agrícola"),
    ("123456789", "Ana Luísa Magalhães"),
    ("134567890", "José António Conceição"),
    ("145678901", "Maria João Guimarães"),
    ("156789012", "Rui Gonçalves Simões"),
    ("167890123", "Beatriz Araújo Lopes"),
    ("178901234", "Tomás Brandão Veríssimo"),
    ("189012345", "Leonor Sá Fonseca"),
    ("190123456", "André Loureiro Pimentel"),
    ("201234567", "Carla Patrícia Ramalho"),
    ("212345678", "Gonçalo Estêvão Carvalho"),
]

# A different set for the workbook sample.
XLSX_CUSTOMERS = [
    ("503300267", "Adega Cooperativa de Borba"),
    ("503411358", "Peixaria Nazaré, Lda."),
    ("503522449", "Carpintaria Moderna Simões"),
    ("503633530", "Instituto de Línguas Babel"),
    ("503744621", "Clínica Veterinária Patas"),
    ("503855712", "Mercearia Tradição, Lda."),
    ("503966803", "Eletrodomésticos Ribeiro, S.A."),
    ("504077994", "Cabeleireiro Estilo Próprio"),
    ("504188085", "Armazéns Vouga, Lda."),
    ("504299176", "Tipografia Minerva Coimbrã"),
    ("504300267", "Mobiliário Paços de Ferreira, S.A."),
    ("504411358", "Queijaria Serra da Estrela"),
    ("223456789", "Filipa Conceição Rebelo"),
    ("234567890", "Duarte Magalhães Pinto"),
    ("245678901", "Matilde Araújo Teixeira"),
    ("256789012", "Vasco Gonçalves Morais"),
    ("267890123", "Sofia Guimarães Antunes"),
    ("278901234", "Henrique Sá Valente"),
    ("289012345", "Carolina Brito Lourenço"),
    ("290123456", "Lourenço Tavares Neves"),
]


def csv_rows() -> list[list[str]]:
    rows: list[list[str]] = []
    for k, (cid, name) in enumerate(CSV_CUSTOMERS):
        company = cid.startswith("5")
        rows.append([cid, "name", name])
        rows.append([cid, "segment", SEGMENTS[k % 4] if company else "Particular"])
        if company or k % 2 == 0:
            rows.append([cid, "account_manager", MANAGERS[k % len(MANAGERS)]])
        if k % 3 == 0:
            rows.append([cid, "region", REGIONS[k % len(REGIONS)]])
        if company and k % 2 == 0:
            rows.append([cid, "contract_number", f"{(k * 37 + 123) % 10000:05d}"])
        if company and k % 3 == 1:
            rows.append([cid, "credit_limit", str(2500 + 500 * (k % 9))])
        if k % 7 == 0:
            rows.append([cid, "preferred_channel", CHANNELS[k % len(CHANNELS)]])
    rows.insert(7, ["500211358", "notes", "Pagamento trimestral, por débito direto"])
    rows.insert(20, ["500544621", "notes", 'Contacto: Sr. Araújo ("Tó")'])
    # invalid: an empty value
    rows.insert(41, ["500988085", "payment_terms_days", ""])
    # invalid: no customer id
    rows.insert(58, ["", "segment", "Retalho"])
    # invalid, both rows: the same attribute twice with different values
    rows.insert(75, ["501644621", "payment_terms_days", "30"])
    rows.append(["501644621", "payment_terms_days", "60"])
    # valid: the same value twice travels once
    rows.append(["123456789", "segment", "Particular"])
    return rows


def write_csv(path: Path) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["customer_id", "attribute", "value"])
        writer.writerows(csv_rows())


def xlsx_rows() -> list[list[object]]:
    rows: list[list[object]] = []
    for k, (cid, name) in enumerate(XLSX_CUSTOMERS):
        person = not cid.startswith("5")
        rows.append([cid, "name", name])
        rows.append([cid, "segment", "Particular" if person else SEGMENTS[k % 4]])
        rows.append([cid, "account_manager", MANAGERS[(k + 1) % len(MANAGERS)]])
        rows.append([cid, "client_since", dt.date(2015 + k % 9, 1 + k % 12, 1 + k % 27)])
        rows.append([cid, "e_invoicing", k % 3 != 0])
        if not person:
            rows.append([cid, "contract_number", 20240000 + k * 7])  # a number cell
            rows.append([cid, "credit_limit", 1000 * (k % 7 + 1)])  # a whole number
            if k % 4 == 1:
                rows.append([cid, "discount_rate", (0.025, 0.05, 0.075)[k % 3]])
    rows.insert(12, ["504077994", "region", "Região Norte"])
    # invalid: an empty value
    rows.insert(25, ["504188085", "region", None])
    # invalid: an attribute of blanks
    rows.insert(40, ["245678901", "   ", "Lisboa"])
    return rows


def write_xlsx(path: Path) -> None:
    wb = Workbook()
    ws = wb.active
    ws.title = "Clientes"
    ws.append(["Customer ID", "Attribute", "Value"])
    for cell in ws[1]:
        cell.font = Font(bold=True)
    for row in xlsx_rows():
        ws.append(row)
    for row in ws.iter_rows(min_row=2, min_col=3, max_col=3):
        for cell in row:
            if isinstance(cell.value, dt.date):
                cell.number_format = "dd/mm/yyyy"
    ws.column_dimensions["A"].width = 14
    ws.column_dimensions["B"].width = 20
    ws.column_dimensions["C"].width = 40
    fixed = dt.datetime(2024, 1, 1)
    wb.properties.created = fixed
    wb.properties.modified = fixed
    wb.save(path)


def main() -> None:
    write_csv(HERE / "customers.csv")
    write_xlsx(HERE / "customers.xlsx")


if __name__ == "__main__":
    main()
