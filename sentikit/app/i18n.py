"""The page's own words in English, Chinese (simplified) and Japanese.

Two kinds of text, one table:

- what the layout fixes once (the intro, labels, buttons, headings): handed to Gradio's `gr.I18n`
  (`gradio_translations`), which the browser shows in its own language (`navigator.language`), English
  for any other;
- what the server writes for each review (the legend, summaries, notes, the gates' meanings): formatted
  by `message` in the language of the request's `Accept-Language` (`language.page_language`), the same
  browser setting.

The keys handed to Gradio are prefixed `sk_`: Gradio's own translations nest keys such as `label` under
names of their own, and a key that meets one of those shows as `[object Object]`. Gradio's translations
are ICU messages, so the static texts carry no `{`; the server's messages carry `str.format` fields.
The API (`/explain`) and error messages stay in English: a client's code reads them.
"""

from __future__ import annotations

from sentikit.app.language import Language

INTRO = {
    "en": """# sentikit: what the gates kept

Type a review and press **Explain**. Each column is one model reading the same text: a plain RNN, an LSTM
and a GRU. A review in English goes to the English models, one in Chinese to the Chinese ones: the
language is read from the review's characters, or chosen under **Language**. There is no Japanese model:
a Japanese review is read by the Chinese models, which know the kanji. Chinese and Japanese are read one
character at a time, and each character is coloured on its own.

The English models learned from movie phrases (SST-2), whole movie reviews (IMDB) and Amazon reviews of
electronics and kitchen products; the GRU reads about nine such reviews in ten right. Reviews of other
kinds of things they read less well: trained without the Amazon reviews, it read them 83% right. The
Chinese models learned from shopping reviews (94% right) and read food-delivery reviews, which they never
saw, 83% right.

Words are coloured by how much they pushed the prediction (the exact split of the logits through the
LSTM's and GRU's gates; leave-one-out occlusion for the RNN, which has no gates). Switch the highlight to
**retention** to see how much of each word's write is still in the final memory: the gated cells hold on
to the words that matter, while the plain RNN's memory of early words fades (its curve is the gradient of
the final state, the vanishing gradient).

The shipped models are bidirectional: their backward half reads the review from the end, so the first
words are its most recent ones, which is why the opening word keeps a share of the memory.

Conventions are PyTorch's. LSTM: `c_t = f_t * c_(t-1) + i_t * g_t`, `h_t = o_t * tanh(c_t)`, a forget gate near 1
keeps the old memory. GRU: `h_t = (1 - z_t) * n_t + z_t * h_(t-1)`: the update gate `z` shown here is the share
of the **old** state kept (many articles call `1 - z` the update gate).""",
    "zh": """# sentikit：门记住了什么

输入一条评论，点击**解释**。每一列是一个模型在读同一段文字：普通 RNN、LSTM 和 GRU。英文评论交给英文模型，中文评论交给中文模型：语言按评论里的字符自动判断，也可以在**语言**里自己选。没有日语模型：日语评论由认识汉字的中文模型来读。中文和日文按字来读，每个字单独着色。

英文模型学的是电影短句（SST-2）、完整的影评（IMDB）和 Amazon 上电子产品与厨房用品的评论，GRU 对这几类评论大约十条能判对九条；对别的东西的评论就差一些：不用 Amazon 评论训练时，它对这些评论只判对 83%。中文模型学的是购物评论（判对 94%），对从没见过的外卖评论判对 83%。

颜色表示每个词把预测推向哪一边、推了多少（LSTM 和 GRU 用经过门的 logits 精确分解；普通 RNN 没有门，用逐个遮挡法）。把高亮切换到**保留**，可以看到每个词写入的内容在最终记忆里还剩多少：带门的单元会留住要紧的词，而普通 RNN 对前面的词记得越来越少（它的曲线是最终状态的梯度，也就是梯度消失）。

随附的模型是双向的：反向的一半从结尾读起，对它来说开头的词是最近读到的，所以第一个词也能在记忆中占一份。

约定与 PyTorch 相同。LSTM：`c_t = f_t * c_(t-1) + i_t * g_t`，`h_t = o_t * tanh(c_t)`，遗忘门接近 1 时保留旧记忆。GRU：`h_t = (1 - z_t) * n_t + z_t * h_(t-1)`：这里显示的更新门 `z` 是保留下来的**旧**状态所占的比例（很多文章把 `1 - z` 叫作更新门）。""",
    "ja": """# sentikit：ゲートは何を覚えていたか

レビューを入力して **説明** を押してください。各列は同じ文章を読む一つのモデルです：素の RNN、LSTM、GRU。英語のレビューは英語のモデルへ、中国語のレビューは中国語のモデルへ送られます。言語はレビューの文字から判定され、**言語** で選ぶこともできます。日本語のモデルはないため、日本語のレビューは漢字を知っている中国語のモデルが読みます。中国語と日本語は一文字ずつ読まれ、文字ごとに色が付きます。

英語のモデルは映画の短い句（SST-2）、映画レビュー全文（IMDB）、Amazon の電子機器とキッチン用品のレビューから学習し、GRU はこうしたレビューのおよそ十件に九件を正しく読みます。ほかの種類のレビューはそれほど読めません。Amazon のレビューなしで学習すると、それらを正しく読めたのは 83% でした。中国語のモデルは買い物レビューから学習し（正解率 94%）、見たことのない出前のレビューを 83% 正しく読みます。

色は各語が予測をどちらへどれだけ押したかを示します（LSTM と GRU はゲートを通した logits の厳密な分解、ゲートのない素の RNN は一語ずつ隠す遮蔽法）。ハイライトを **保持** に切り替えると、各語の書き込みが最終的な記憶にどれだけ残っているかが分かります。ゲート付きのセルは大事な語を保ち、素の RNN は前の語ほど記憶が薄れます（その曲線は最終状態の勾配、つまり勾配消失です）。

同梱のモデルは双方向です。逆方向の半分は末尾から読むので、先頭の語がいちばん新しく読んだ語になり、最初の語も記憶の一部を保ちます。

表記は PyTorch に従います。LSTM：`c_t = f_t * c_(t-1) + i_t * g_t`、`h_t = o_t * tanh(c_t)`、忘却ゲートが 1 に近いと古い記憶を保ちます。GRU：`h_t = (1 - z_t) * n_t + z_t * h_(t-1)`：ここに示す更新ゲート `z` は**古い**状態を保つ割合です（多くの記事では `1 - z` を更新ゲートと呼びます）。""",
}

# The texts the layout fixes once: handed to `gr.I18n` under `sk_<key>`, their fields filled first
# (`gradio_translations`), so that Gradio receives no `{` (see the module docstring).
STATIC: dict[str, dict[str, str]] = {
    "en": {
        "title": "sentikit: what the gates kept",
        "intro": INTRO["en"],
        "review": "Review",
        "placeholder": "Type or paste a review (up to {limit} characters)",
        "language": "Language",
        "auto": "auto",
        "highlight": "Highlight",
        "contribution": "contribution",
        "retention": "retention",
        "explain": "Explain",
        "examples_en": "Examples in English",
        "examples_zh": "Examples in Chinese and Japanese",
        "models_en": "## English models",
        "models_zh": "## Chinese models",
        "models_ja": "## Japanese models",
        "plot_title": "How much of each word survives to the end",
        "plot_x": "word position",
        "plot_y": "share of the final state",
    },
    "zh": {
        "title": "sentikit：门记住了什么",
        "intro": INTRO["zh"],
        "review": "评论",
        "placeholder": "输入或粘贴一条评论（最多 {limit} 个字符）",
        "language": "语言",
        "auto": "自动",
        "highlight": "高亮",
        "contribution": "贡献",
        "retention": "保留",
        "explain": "解释",
        "examples_en": "英文示例",
        "examples_zh": "中文和日文示例",
        "models_en": "## 英文模型",
        "models_zh": "## 中文模型",
        "models_ja": "## 日文模型",
        "plot_title": "每个词有多少留到了最后",
        "plot_x": "词的位置",
        "plot_y": "在最终状态中的比例",
    },
    "ja": {
        "title": "sentikit：ゲートは何を覚えていたか",
        "intro": INTRO["ja"],
        "review": "レビュー",
        "placeholder": "レビューを入力または貼り付け（{limit} 文字まで）",
        "language": "言語",
        "auto": "自動",
        "highlight": "ハイライト",
        "contribution": "寄与",
        "retention": "保持",
        "explain": "説明",
        "examples_en": "英語の例",
        "examples_zh": "中国語と日本語の例",
        "models_en": "## 英語のモデル",
        "models_zh": "## 中国語のモデル",
        "models_ja": "## 日本語のモデル",
        "plot_title": "各語のどれだけが最後まで残るか",
        "plot_x": "語の位置",
        "plot_y": "最終状態に占める割合",
    },
}

# What the server writes for a review, `str.format`ted by `message`.
MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "legend_retention": "{swatch} share of the final memory the word's write still holds (LSTM, GRU); for the RNN, "
        "its memory decay (gradient) share. Darker: more of it survives.",
        "legend_two": "{second_swatch} pushed towards <b>{second}</b> &nbsp; {first_swatch} pushed towards <b>{first}</b>. "
        "Darker: a bigger push, relative to the review's strongest word.",
        "legend_many": "{second_swatch} pushed towards the predicted class &nbsp; {first_swatch} against it.",
        "method_gates": "words scored by the exact gates split",
        "method_occlusion": "words scored by occlusion (leave one out): no gates to split through",
        "summary_retention": "retention",
        "summary_memory_decay": "memory decay (gradient), no retention without gates",
        "truncated": "*Only the first {max_length} of {num_tokens} tokens were read (the most the page reads); "
        "the rest is greyed out.*",
        "forward_only": "{what} predicts only: explanations need a TorchScript bundle",
        "no_gates": "A plain RNN has no gates: its state is rewritten at every word.",
        "gates_note": "Gate means over units and directions, white 0 to blue 1. {meaning}.",
        "separator": "; ",
        "gate_input": "input i",
        "gate_forget": "forget f",
        "gate_output": "output o",
        "gate_reset": "reset r",
        "gate_update": "update z",
        "meaning_input": "i: how much of the new candidate is written",
        "meaning_forget": "f near 1 keeps the old memory",
        "meaning_output": "o: how much of the memory is shown",
        "meaning_reset": "r: how much of the old state shapes the candidate",
        "meaning_update": "z near 1 keeps the OLD state (PyTorch's convention)",
        "towards": "{score} towards {label}",
        "share": "{share}% ({kind})",
        "kind_retention": "retention",
        "kind_memory_decay": "memory decay",
        "series": "{cell} {kind} ({name})",
        "heading": "{cell} · {name}",
        "heading_accuracy": "{cell} · {name} · {accuracy}% on {file}",
        "note_ja_read_by_zh": "There is no Japanese model: this review is read by the Chinese models, which know the kanji "
        "but hardly any kana, so a negation written in kana (〜ない, 〜ません) is lost on them: read their verdict with care.",
        "note_no_model": "No served model reads {read_as}: every model reads this review.",
        "language_en": "English",
        "language_zh": "Chinese",
        "language_ja": "Japanese",
        "label_positive": "positive",
        "label_negative": "negative",
    },
    "zh": {
        "legend_retention": "{swatch} 词写入的内容在最终记忆里还占的比例（LSTM、GRU）；RNN 显示的是记忆衰减（梯度）的比例。颜色越深，留下的越多。",
        "legend_two": "{second_swatch} 推向<b>{second}</b> &nbsp; {first_swatch} 推向<b>{first}</b>。颜色越深，推力越大（相对于这条评论里最强的词）。",
        "legend_many": "{second_swatch} 推向预测的类别 &nbsp; {first_swatch} 与之相反。",
        "method_gates": "词的得分来自门的精确分解",
        "method_occlusion": "词的得分来自遮挡法（逐个去掉）：没有门可以分解",
        "summary_retention": "保留",
        "summary_memory_decay": "记忆衰减（梯度）：没有门就没有保留",
        "truncated": "*只读了 {num_tokens} 个词元中的前 {max_length} 个（页面最多读这么多），其余部分显示为灰色。*",
        "forward_only": "{what} 只能预测：解释需要 TorchScript 包",
        "no_gates": "普通 RNN 没有门：每读一个词，状态都整个重写。",
        "gates_note": "门值在各单元和两个方向上的平均，白色为 0，蓝色为 1。{meaning}。",
        "separator": "；",
        "gate_input": "输入门 i",
        "gate_forget": "遗忘门 f",
        "gate_output": "输出门 o",
        "gate_reset": "重置门 r",
        "gate_update": "更新门 z",
        "meaning_input": "i：新候选值写入多少",
        "meaning_forget": "f 接近 1 时保留旧记忆",
        "meaning_output": "o：记忆输出多少",
        "meaning_reset": "r：旧状态对候选值的影响有多大",
        "meaning_update": "z 接近 1 时保留旧状态（PyTorch 的约定）",
        "towards": "{score}，推向{label}",
        "share": "{share}%（{kind}）",
        "kind_retention": "保留",
        "kind_memory_decay": "记忆衰减",
        "series": "{cell} {kind} ({name})",
        "heading": "{cell} · {name}",
        "heading_accuracy": "{cell} · {name} · 在 {file} 上 {accuracy}%",
        "note_ja_read_by_zh": "没有日语模型：这条评论由中文模型来读。它们认识汉字，却几乎不认识假名，用假名写的否定（〜ない、〜ません）它们读不出来，请谨慎看待结果。",
        "note_no_model": "没有读{read_as}的模型：所有模型都来读这条评论。",
        "language_en": "英文",
        "language_zh": "中文",
        "language_ja": "日文",
        "label_positive": "正面",
        "label_negative": "负面",
    },
    "ja": {
        "legend_retention": "{swatch} 語の書き込みが最終的な記憶にまだ占める割合（LSTM、GRU）。RNN は記憶の減衰（勾配）の割合。濃いほど多く残っています。",
        "legend_two": "{second_swatch} <b>{second}</b>へ押した &nbsp; {first_swatch} <b>{first}</b>へ押した。濃いほど強く押しています（このレビューで最も強い語に対して）。",
        "legend_many": "{second_swatch} 予測されたクラスへ押した &nbsp; {first_swatch} その逆。",
        "method_gates": "語のスコアはゲートによる厳密な分解",
        "method_occlusion": "語のスコアは遮蔽法（一語ずつ除く）：分解できるゲートがありません",
        "summary_retention": "保持",
        "summary_memory_decay": "記憶の減衰（勾配）：ゲートがないので保持はありません",
        "truncated": "*{num_tokens} トークンのうち最初の {max_length} だけを読みました（ページが読む上限）。残りは灰色で表示しています。*",
        "forward_only": "{what} は予測のみ：説明には TorchScript のバンドルが必要です",
        "no_gates": "素の RNN にはゲートがありません：状態は語ごとに書き換えられます。",
        "gates_note": "ゲート値のユニットと両方向での平均、白が 0、青が 1。{meaning}。",
        "separator": "／",
        "gate_input": "入力 i",
        "gate_forget": "忘却 f",
        "gate_output": "出力 o",
        "gate_reset": "リセット r",
        "gate_update": "更新 z",
        "meaning_input": "i：新しい候補をどれだけ書き込むか",
        "meaning_forget": "f が 1 に近いと古い記憶を保つ",
        "meaning_output": "o：記憶をどれだけ出力するか",
        "meaning_reset": "r：古い状態が候補にどれだけ効くか",
        "meaning_update": "z が 1 に近いと古い状態を保つ（PyTorch の表記）",
        "towards": "{label}へ {score}",
        "share": "{share}%（{kind}）",
        "kind_retention": "保持",
        "kind_memory_decay": "記憶の減衰",
        "series": "{cell} {kind} ({name})",
        "heading": "{cell} · {name}",
        "heading_accuracy": "{cell} · {name} · {file} で {accuracy}%",
        "note_ja_read_by_zh": "日本語のモデルはありません。このレビューは中国語のモデルが読んでいます。漢字は分かりますが、かなはほとんど分からないため、かなで書かれた否定（〜ない、〜ません）は読み取れません。結果は参考程度にご覧ください。",
        "note_no_model": "{read_as}を読むモデルがありません：すべてのモデルがこのレビューを読んでいます。",
        "language_en": "英語",
        "language_zh": "中国語",
        "language_ja": "日本語",
        "label_positive": "ポジティブ",
        "label_negative": "ネガティブ",
    },
}


def message(key: str, language: Language = "en", **values: object) -> str:
    """The server's text `key` in `language` (English where a translation lacks it), formatted with `values`."""
    text = MESSAGES.get(language, {}).get(key) or MESSAGES["en"][key]
    return text.format(**values) if values else text


def label_name(label: str, language: Language = "en") -> str:
    """A class as the page names it: `positive`/`negative` translated, any other label name as the bundle has it."""
    translated = MESSAGES.get(language, {}).get(f"label_{label}")
    return translated or label


def gradio_translations(extra: dict[str, dict[str, str]] | None = None, **values: object) -> dict[str, dict[str, str]]:
    """The static texts as `gr.I18n(**gradio_translations(...))` takes them: per language, `sk_<key>` to its
    text with its fields filled from `values` (`limit`: the longest review), and `extra` (per language, more
    `key: text`, e.g. the models' headings, taken as they are) under the same prefix."""
    tables = {}
    for language, texts in STATIC.items():
        table = {f"sk_{key}": text.format(**values) for key, text in texts.items()}
        table.update({f"sk_{key}": text for key, text in (extra or {}).get(language, {}).items()})
        tables[language] = table
    return tables
