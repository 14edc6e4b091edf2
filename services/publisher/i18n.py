"""Words of the public page in Vietnamese (first) and English, and how numbers, dates and periods read in each.

Two languages with a few dozen phrases: a dictionary per language keeps every phrase beside its translation
(a test checks both have the same keys); unknown profile, band or level names show as they come.
"""

from __future__ import annotations

from datetime import datetime

from shared.periods import local_time, parse_period

LANGUAGES = ("vi", "en")
DEFAULT_LANGUAGE = "vi"

MESSAGES: dict[str, dict[str, str]] = {
    "vi": {
        "site_title": "Hài Lòng — Mức độ hài lòng với dịch vụ hành chính công",
        "site_short": "Hài Lòng",
        "tagline": "Kết quả đánh giá của người dân, doanh nghiệp về giải quyết thủ tục hành chính",
        "skip": "Bỏ qua, đến nội dung chính",
        "switch_language": "English",
        "switch_language_label": "Switch to English",
        "filters": "Chọn kết quả",
        "period": "Kỳ",
        "profile": "Bộ tiêu chí",
        "level": "Cấp",
        "all_levels": "Tất cả các cấp",
        "edition": "Loại số liệu",
        "edition_live": "Trực tiếp (cập nhật liên tục)",
        "edition_official": "Chính thức (chốt cuối kỳ)",
        "show": "Xem",
        "map": "Bản đồ",
        "map_caption": "Các đơn vị tô màu theo mức xếp loại. Đơn vị chưa có tọa độ chỉ có trong bảng.",
        "map_label": "Bản đồ Việt Nam với các đơn vị được tô màu theo mức xếp loại",
        "zoom_units": "Phóng to vùng có đơn vị",
        "zoom_country": "Xem toàn quốc",
        "legend": "Chú giải",
        "tone_good": "Tốt",
        "tone_fair": "Trung bình",
        "tone_poor": "Chưa đạt",
        "tone_none": "Chưa đủ dữ liệu",
        "hoang_sa": "Q.Đ. Hoàng Sa",
        "truong_sa": "Q.Đ. Trường Sa",
        "ranking": "Bảng xếp hạng",
        "ranking_caption": "Xếp hạng {profile}, {period}",
        "rank": "Hạng",
        "unit": "Đơn vị",
        "score": "Điểm",
        "band": "Xếp loại",
        "ratings": "Lượt đánh giá",
        "dossiers": "Hồ sơ",
        "provisional": "tạm tính",
        "provisional_note": "Số liệu tạm tính chưa được xếp hạng cùng số liệu chính thức của kỳ.",
        "not_ranked": "—",
        "insufficient_data": "Chưa đủ dữ liệu",
        "insufficient_note": "Đơn vị có dưới {count} lượt đánh giá được ghi “Chưa đủ dữ liệu” thay vì số liệu, để bảo vệ người trả lời.",
        "no_results": "Chưa có kết quả nào được công bố.",
        "no_rows": "Không có đơn vị nào phù hợp.",
        "download": "Tải dữ liệu",
        "download_csv": "Bảng xếp hạng (CSV)",
        "download_json": "Bảng xếp hạng (JSON)",
        "download_geojson": "Đơn vị (GeoJSON)",
        "download_schema": "Mô tả dữ liệu và giấy phép (Data Package)",
        "open_data": "Dữ liệu mở",
        "licence_note": "Dữ liệu được công bố theo giấy phép {licence}.",
        "live_updates": "Tự động cập nhật khi có kết quả mới.",
        "updated": "Đã cập nhật: {unit}",
        "official_as_of": "Số liệu chính thức phiên bản {version}, chốt lúc {moment}.",
        "live_as_of": "Số liệu trực tiếp, thay đổi khi có đánh giá mới.",
        "unit_page_title": "Khảo sát hài lòng — {unit}",
        "unit_heading": "Khảo sát hài lòng",
        "back_to_ranking": "← Về bảng xếp hạng",
        "parent_unit": "Trực thuộc",
        "retired": "Đơn vị đã sắp xếp lại; kết quả từ nay thuộc về {successor}.",
        "current_results": "Kết quả gần nhất",
        "trend": "Diễn biến theo tháng",
        "trend_label": "Biểu đồ điểm {profile} theo tháng của {unit}",
        "trend_table": "Số liệu của biểu đồ",
        "month": "Tháng",
        "official_results": "Kết quả chính thức",
        "snapshot_version": "Phiên bản",
        "frozen_at": "Chốt lúc",
        "remediation": "Khắc phục, cải thiện",
        "remediation_intro": "Những phản ánh chưa hài lòng được giao xử lý trong thời hạn theo ngày làm việc.",
        "tickets_opened": "Đã tiếp nhận",
        "tickets_closed": "Đã đóng",
        "tickets_open": "Đang xử lý",
        "tickets_overdue": "Quá hạn",
        "on_time_share": "Hoàn thành đúng hạn",
        "measures": "Biện pháp đã thực hiện",
        "no_measures": "Chưa có biện pháp nào được công bố.",
        "no_tickets": "Chưa có phản ánh nào cần khắc phục.",
        "category": "Nhóm",
        "date": "Ngày",
        "units_below": "Đơn vị trực thuộc",
        "not_found": "Không tìm thấy đơn vị",
        "footer_privacy": "Không công bố thông tin về người trả lời hay cán bộ, công chức.",
        "vietnam_time": "giờ Việt Nam",
    },
    "en": {
        "site_title": "Hài Lòng — Satisfaction with public administrative services",
        "site_short": "Hài Lòng",
        "tagline": "How citizens and businesses rate the handling of their administrative procedures",
        "skip": "Skip to main content",
        "switch_language": "Tiếng Việt",
        "switch_language_label": "Chuyển sang tiếng Việt",
        "filters": "Choose results",
        "period": "Period",
        "profile": "Criteria",
        "level": "Level",
        "all_levels": "All levels",
        "edition": "Figures",
        "edition_live": "Live (updated continuously)",
        "edition_official": "Official (frozen at period end)",
        "show": "Show",
        "map": "Map",
        "map_caption": "Units coloured by band. Units without coordinates appear in the table only.",
        "map_label": "Map of Việt Nam with units coloured by band",
        "zoom_units": "Zoom to the units",
        "zoom_country": "Whole country",
        "legend": "Legend",
        "tone_good": "Good",
        "tone_fair": "Middling",
        "tone_poor": "Below target",
        "tone_none": "Insufficient data",
        "hoang_sa": "Hoang Sa archipelago",
        "truong_sa": "Truong Sa archipelago",
        "ranking": "Ranking",
        "ranking_caption": "Ranking by {profile}, {period}",
        "rank": "Rank",
        "unit": "Unit",
        "score": "Score",
        "band": "Band",
        "ratings": "Ratings",
        "dossiers": "Dossiers",
        "provisional": "provisional",
        "provisional_note": "Provisional figures are not ranked among the period's final figures.",
        "not_ranked": "—",
        "insufficient_data": "Insufficient data",
        "insufficient_note": "Units with fewer than {count} ratings show “Insufficient data” instead of figures, to protect respondents.",
        "no_results": "No results have been published yet.",
        "no_rows": "No unit matches.",
        "download": "Download",
        "download_csv": "Ranking (CSV)",
        "download_json": "Ranking (JSON)",
        "download_geojson": "Units (GeoJSON)",
        "download_schema": "Data description and licence (Data Package)",
        "open_data": "Open data",
        "licence_note": "The data are published under the {licence} licence.",
        "live_updates": "Updates automatically when new results arrive.",
        "updated": "Updated: {unit}",
        "official_as_of": "Official figures, version {version}, frozen at {moment}.",
        "live_as_of": "Live figures; they change as new ratings arrive.",
        "unit_page_title": "Satisfaction survey — {unit}",
        "unit_heading": "Satisfaction survey",
        "back_to_ranking": "← Back to the ranking",
        "parent_unit": "Part of",
        "retired": "This unit was reorganised; its results now belong to {successor}.",
        "current_results": "Latest results",
        "trend": "Month by month",
        "trend_label": "Chart of {unit}'s {profile} score by month",
        "trend_table": "Figures of the chart",
        "month": "Month",
        "official_results": "Official results",
        "snapshot_version": "Version",
        "frozen_at": "Frozen at",
        "remediation": "Remediation",
        "remediation_intro": "Dissatisfied answers are assigned for remediation within deadlines counted in working days.",
        "tickets_opened": "Opened",
        "tickets_closed": "Closed",
        "tickets_open": "In progress",
        "tickets_overdue": "Overdue",
        "on_time_share": "Finished on time",
        "measures": "Measures taken",
        "no_measures": "No measures have been published yet.",
        "no_tickets": "No dissatisfied answers needed remediation.",
        "category": "Area",
        "date": "Date",
        "units_below": "Units below",
        "not_found": "Unit not found",
        "footer_privacy": "Nothing about respondents or civil servants is published.",
        "vietnam_time": "Việt Nam time",
    },
}

NAMES: dict[str, dict[str, dict[str, str]]] = {
    "band": {
        "vi": {"satisfied": "Hài lòng", "not_satisfied": "Chưa hài lòng", "insufficient_data": "Chưa đủ dữ liệu",
               "excellent": "Xuất sắc", "good": "Tốt", "fair": "Khá", "average": "Trung bình", "weak": "Yếu",
               "met": "Đạt", "not_met": "Chưa đạt", "below_target": "Dưới mục tiêu"},
        "en": {"satisfied": "Satisfied", "not_satisfied": "Not satisfied", "insufficient_data": "Insufficient data",
               "excellent": "Excellent", "good": "Good", "fair": "Fair", "average": "Average", "weak": "Weak",
               "met": "Met", "not_met": "Not met", "below_target": "Below target"},
    },
    "profile": {
        "vi": {"hcmc-2024": "QĐ 104/2024 TP.HCM (chỉ số K)", "qd766-satisfaction": "QĐ 766/QĐ-TTg — nhóm hài lòng",
               "decree-61": "NĐ 61/2018 (9 chỉ số)", "sipas": "SIPAS (5 yếu tố)", "satisfied-share": "Tỷ lệ hài lòng"},
        "en": {"hcmc-2024": "HCMC Decision 104/2024 (index K)", "qd766-satisfaction": "Decision 766/QĐ-TTg — satisfaction group",
               "decree-61": "Decree 61/2018 (9 indices)", "sipas": "SIPAS (5 factors)", "satisfied-share": "Share satisfied"},
    },
    "level": {
        "vi": {"province": "Tỉnh, thành phố", "department": "Sở, ban, ngành", "agency": "Cơ quan", "ward": "Phường",
               "commune": "Xã", "special_zone": "Đặc khu", "center": "Trung tâm Phục vụ hành chính công"},
        "en": {"province": "Provinces and cities", "department": "Departments", "agency": "Agencies", "ward": "Wards",
               "commune": "Communes", "special_zone": "Special zones", "center": "Public administration service centres"},
    },
    "category": {
        "vi": {"service_conditions": "Điều kiện phục vụ, thái độ", "procedure": "Thủ tục, thời gian giải quyết"},
        "en": {"service_conditions": "Service conditions and attitude", "procedure": "Procedure and processing time"},
    },
}

ROMAN = {1: "I", 2: "II", 3: "III", 4: "IV"}


class Translator:
    """What a template needs to speak one language."""

    def __init__(self, language: str) -> None:
        self.language = language if language in LANGUAGES else DEFAULT_LANGUAGE
        self.messages = MESSAGES[self.language]

    def __call__(self, key: str, **values: object) -> str:
        text = self.messages[key]
        return text.format(**values) if values else text

    def name(self, kind: str, value: str | None) -> str:
        if not value:
            return ""
        return NAMES[kind][self.language].get(value, value.replace("_", " ").replace("-", " "))

    def period(self, text: str) -> str:
        period = parse_period(text)
        vi = self.language == "vi"
        if period.kind == "month":
            return f"Tháng {period.index:02d}/{period.year}" if vi else datetime(period.year, period.index, 1).strftime("%B %Y")
        if period.kind == "quarter":
            return f"Quý {ROMAN[period.index]}/{period.year}" if vi else f"Q{period.index} {period.year}"
        if period.kind == "half":
            return f"6 tháng {'đầu' if period.index == 1 else 'cuối'} năm {period.year}" if vi else f"H{period.index} {period.year}"
        return f"Năm {period.year}" if vi else f"Year {period.year}"

    def number(self, value: float | None, digits: int = 2) -> str:
        if value is None:
            return ""
        text = f"{value:,.{digits}f}"
        if self.language == "vi":  # 1.234,56
            text = text.replace(",", "\u0000").replace(".", ",").replace("\u0000", ".")
        return text

    def percent(self, share: float | None) -> str:
        return "" if share is None else f"{self.number(share * 100, 1)}%"

    def moment(self, value: datetime | str | None) -> str:
        if value is None:
            return ""
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return local_time(value).strftime("%d/%m/%Y %H:%M")

    def date(self, value: datetime | None) -> str:
        return local_time(value).strftime("%d/%m/%Y") if value else ""


def translator(language: str | None) -> Translator:
    return Translator(language or DEFAULT_LANGUAGE)


