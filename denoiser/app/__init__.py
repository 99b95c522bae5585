"""The Gradio page: one module per tab (denoise_tab, batch_tab, train_tab), who may do what
(access), the page's refusals (messages), and the layout that wires them (page)."""
