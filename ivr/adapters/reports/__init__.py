"""The monthly report's files: the workbook (openpyxl), the PDF (reportlab) and the CSV."""
