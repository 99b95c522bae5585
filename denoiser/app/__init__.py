"""The Gradio page: what each tab does (denoise_tab, batch_tab, train_tab), each tab's layout
and events (denoise_layout, batch_layout, train_layout), who may do what (access), the page's
refusals (messages), and the page that assembles the tabs around their shared state (page)."""
